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
use core_external\external_single_structure;
use core_external\external_value;
use local_riskstream\alerts;
use local_riskstream\feedback;

/**
 * local_riskstream_give_feedback: a teacher marks an alert acknowledged, contacted or not useful.
 *
 * The same as the buttons on the course page, for the Moodle app and scripts.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class give_feedback extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'alertid' => new external_value(PARAM_ALPHANUMEXT, 'Alert id'),
            'action' => new external_value(PARAM_ALPHA, 'acknowledged, contacted or notuseful'),
        ]);
    }

    /**
     * Record the caller's answer.
     *
     * @param string $alertid
     * @param string $action
     * @return array
     */
    public static function execute(string $alertid, string $action): array {
        global $DB, $USER;
        $params = self::validate_parameters(self::execute_parameters(), ['alertid' => $alertid, 'action' => $action]);
        $alert = $DB->get_record(alerts::TABLE, ['alertid' => $params['alertid']], '*', MUST_EXIST);
        $context = context_course::instance($alert->courseid);
        self::validate_context($context);
        require_capability('local/riskstream:viewalerts', $context);
        $row = feedback::record($params['alertid'], $params['action'], (int)$USER->id);
        return ['id' => (int)$row->id, 'action' => $row->action];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'id' => new external_value(PARAM_INT, 'Feedback id'),
            'action' => new external_value(PARAM_ALPHA, 'The stored answer'),
        ]);
    }
}
