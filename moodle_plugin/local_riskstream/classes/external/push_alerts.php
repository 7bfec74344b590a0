<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\external;

use context_course;
use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;
use invalid_parameter_exception;
use local_riskstream\alerts;

/**
 * local_riskstream_push_alerts: store alerts once (unique alert id) and notify the teachers.
 *
 * A replay of the same alert answers "duplicate" and notifies nobody, so the connector can
 * retry freely.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class push_alerts extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'alerts' => new external_multiple_structure(new external_single_structure([
                'alertid' => new external_value(PARAM_ALPHANUMEXT, 'Deterministic alert id (unique)'),
                'courseid' => new external_value(PARAM_INT, 'Course id'),
                'userid' => new external_value(PARAM_INT, 'Student the alert is about'),
                'risk' => new external_value(PARAM_FLOAT, 'Probability of failing or withdrawing, 0..1'),
                'level' => new external_value(PARAM_ALPHA, 'low, medium or high'),
                'threshold' => new external_value(PARAM_FLOAT, 'Threshold crossed', VALUE_DEFAULT, 0),
                'modelversion' => new external_value(PARAM_TEXT, 'Model version', VALUE_DEFAULT, ''),
                'day' => new external_value(PARAM_INT, 'Course day (0 = start)', VALUE_DEFAULT, 0),
                'explanation' => new external_value(PARAM_TEXT, 'Why, in words', VALUE_DEFAULT, ''),
                'timecreated' => new external_value(PARAM_INT, 'When riskstream raised it', VALUE_DEFAULT, 0),
            ]), 'Alerts', VALUE_REQUIRED),
        ]);
    }

    /**
     * Store and notify.
     *
     * @param array $alerts alerts as described by execute_parameters
     * @return array
     */
    public static function execute(array $alerts): array {
        $params = self::validate_parameters(self::execute_parameters(), ['alerts' => $alerts]);
        $results = [];
        $warnings = [];
        foreach ($params['alerts'] as $alert) {
            if (!in_array($alert['level'], ['low', 'medium', 'high'], true)) {
                throw new invalid_parameter_exception('level must be low, medium or high');
            }
            if ($alert['risk'] < 0 || $alert['risk'] > 1) {
                throw new invalid_parameter_exception('risk must be within 0..1');
            }
            $context = context_course::instance($alert['courseid']);
            self::validate_context($context);
            require_capability('local/riskstream:pushalerts', $context);
            [$status, $notified] = alerts::store_and_notify((object)$alert);
            $results[] = ['alertid' => $alert['alertid'], 'status' => $status, 'notified' => $notified];
        }
        return ['results' => $results, 'warnings' => $warnings];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'results' => new external_multiple_structure(new external_single_structure([
                'alertid' => new external_value(PARAM_ALPHANUMEXT, 'Alert id'),
                'status' => new external_value(PARAM_ALPHA, 'stored or duplicate'),
                'notified' => new external_value(PARAM_INT, 'Teachers notified'),
            ])),
            'warnings' => new external_warnings(),
        ]);
    }
}
