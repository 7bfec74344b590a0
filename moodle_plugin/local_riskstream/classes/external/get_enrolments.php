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

/**
 * local_riskstream_get_enrolments: when each active enrolment of a course started.
 *
 * The core roster function gives roles but not the enrolment's start; the worker counts a
 * student's days of evidence from it (and scores students who never click).
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_enrolments extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseid' => new external_value(PARAM_INT, 'Course id'),
        ]);
    }

    /**
     * Active enrolments: user and start (timestart, else when the enrolment was made).
     *
     * @param int $courseid
     * @return array
     */
    public static function execute(int $courseid): array {
        global $DB;
        $params = self::validate_parameters(self::execute_parameters(), ['courseid' => $courseid]);
        $context = context_course::instance($params['courseid']);
        self::validate_context($context);
        require_capability('moodle/course:viewparticipants', $context);
        $sql = "SELECT ue.userid, MIN(CASE WHEN ue.timestart > 0 THEN ue.timestart ELSE ue.timecreated END) AS timestart
                  FROM {user_enrolments} ue
                  JOIN {enrol} e ON e.id = ue.enrolid
                 WHERE e.courseid = :courseid AND e.status = 0 AND ue.status = 0
              GROUP BY ue.userid";
        $rows = $DB->get_records_sql($sql, ['courseid' => $params['courseid']]);
        return ['enrolments' => array_map(fn($r) => ['userid' => (int)$r->userid, 'timestart' => (int)$r->timestart],
            array_values($rows))];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'enrolments' => new external_multiple_structure(new external_single_structure([
                'userid' => new external_value(PARAM_INT, 'User'),
                'timestart' => new external_value(PARAM_INT, 'Start of the enrolment (unix time)'),
            ])),
        ]);
    }
}
